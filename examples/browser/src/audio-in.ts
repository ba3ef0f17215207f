// Microphone capture: getUserMedia -> AudioWorklet (audio-in.worklet.ts) -> 16 kHz PCM16 chunks.
import workletUrl from "./audio-in.worklet.ts?worker&url";

export class Microphone {
  /** Seconds of 16 kHz audio handed to `onChunk` so far. */
  sentSeconds = 0;

  private constructor(
    private readonly stream: MediaStream,
    private readonly context: AudioContext,
  ) {}

  /** Ask for the microphone and start delivering 100 ms chunks of 16 kHz mono PCM16. */
  static async start(onChunk: (pcm16: ArrayBuffer) => void): Promise<Microphone> {
    const stream = await navigator.mediaDevices.getUserMedia({
      // Echo cancellation keeps the model from hearing its own voice from the speakers (and interrupting itself).
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const context = new AudioContext();
    try {
      await context.audioWorklet.addModule(workletUrl);
      // No outputs: the node is a sink, and Chromium pulls such nodes without a path to the speakers.
      const node = new AudioWorkletNode(context, "pcm16-downsampler", { numberOfInputs: 1, numberOfOutputs: 0 });
      const mic = new Microphone(stream, context);
      node.port.onmessage = (event: MessageEvent<ArrayBuffer>) => {
        mic.sentSeconds += event.data.byteLength / 2 / 16_000;
        onChunk(event.data);
      };
      context.createMediaStreamSource(stream).connect(node);
      return mic;
    } catch (error) {
      stream.getTracks().forEach((track) => track.stop());
      void context.close();
      throw error;
    }
  }

  stop(): void {
    this.stream.getTracks().forEach((track) => track.stop());
    void this.context.close();
  }
}
