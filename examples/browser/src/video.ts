// Camera or screen -> preview -> one JPEG frame a second, as the Live API takes video (realtimeInput.video).
import { bytesToBase64 } from "./base64";

const FRAME_INTERVAL_MS = 1000;
const MAX_SIDE = 768; // plenty for the model to see, and a JPEG frame stays a few tens of kB
const JPEG_QUALITY = 0.7;

export type VideoKind = "camera" | "screen";

export class VideoShare {
  /** JPEG frames handed to `onFrame` so far. */
  framesSent = 0;
  private readonly canvas = document.createElement("canvas");
  private timer: number | undefined;
  private stopped = false;

  private constructor(
    readonly kind: VideoKind,
    private readonly stream: MediaStream,
    private readonly preview: HTMLVideoElement,
  ) {}

  /** Ask for the camera or a screen, show it in `preview`, and send a frame a second until stop(). */
  static async start(
    kind: VideoKind,
    preview: HTMLVideoElement,
    onFrame: (jpegBase64: string) => void,
    onEnded: () => void,
  ): Promise<VideoShare> {
    const stream =
      kind === "camera"
        ? await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } })
        : await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const share = new VideoShare(kind, stream, preview);
    preview.srcObject = stream;
    preview.hidden = false;
    try {
      await preview.play();
    } catch (error) {
      share.stop();
      throw error;
    }
    // The browser's own "Stop sharing" button ends the track: stop sending then too.
    stream.getVideoTracks()[0]?.addEventListener("ended", () => {
      share.stop();
      onEnded();
    });
    share.timer = window.setInterval(() => void share.capture(onFrame), FRAME_INTERVAL_MS);
    void share.capture(onFrame);
    return share;
  }

  stop(): void {
    this.stopped = true;
    window.clearInterval(this.timer);
    this.stream.getTracks().forEach((track) => track.stop());
    if (this.preview.srcObject === this.stream) {
      this.preview.srcObject = null;
      this.preview.hidden = true;
    }
  }

  private async capture(onFrame: (jpegBase64: string) => void): Promise<void> {
    const { videoWidth: width, videoHeight: height } = this.preview;
    if (width === 0 || height === 0) return; // no frame decoded yet
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    this.canvas.width = Math.round(width * scale);
    this.canvas.height = Math.round(height * scale);
    this.canvas.getContext("2d")?.drawImage(this.preview, 0, 0, this.canvas.width, this.canvas.height);
    const blob = await new Promise<Blob | null>((resolve) => this.canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    if (blob === null || this.stopped) return;
    const jpeg = bytesToBase64(new Uint8Array(await blob.arrayBuffer()));
    if (this.stopped) return;
    this.framesSent += 1;
    onFrame(jpeg);
  }
}
