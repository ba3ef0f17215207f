// Playback of the model's 24 kHz PCM16 reply: each chunk is scheduled right after the previous one (no gaps).
export const REPLY_RATE = 24_000;
const START_LEAD = 0.05; // seconds of slack before the first chunk of a reply, against network jitter

export class Player {
  /** Seconds of reply audio scheduled so far, and in how many chunks. */
  scheduledSeconds = 0;
  chunks = 0;
  /** Seconds of reply audio the speakers have finished playing. */
  playedSeconds = 0;
  /** Seconds of scheduled audio dropped unplayed because the user spoke over the model. */
  cutSeconds = 0;
  interruptions = 0;

  private readonly context = new AudioContext(); // created in a click handler, so autoplay rules allow it
  private readonly sources = new Set<AudioBufferSourceNode>();
  private nextStart = 0;

  /** `onProgress` runs whenever a chunk finishes playing. */
  constructor(private readonly onProgress: () => void = () => {}) {}

  /** Queue one chunk of little-endian PCM16 mono at 24 kHz. */
  play(pcm16: Uint8Array): void {
    const samples = new Int16Array(pcm16.buffer, pcm16.byteOffset, pcm16.byteLength >> 1);
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, REPLY_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = (samples[i] ?? 0) / 0x8000;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    this.nextStart = Math.max(this.nextStart, this.context.currentTime + START_LEAD);
    source.start(this.nextStart);
    this.nextStart += buffer.duration;
    this.sources.add(source);
    source.onended = () => {
      this.sources.delete(source);
      this.playedSeconds += buffer.duration;
      this.onProgress();
    };
    this.scheduledSeconds += buffer.duration;
    this.chunks += 1;
  }

  /** Seconds of audio scheduled but not yet played. */
  get queuedSeconds(): number {
    return Math.max(0, this.nextStart - this.context.currentTime);
  }

  /** The user spoke over the model: silence it now and drop everything queued. */
  interrupt(): void {
    this.cutSeconds += this.queuedSeconds;
    this.interruptions += 1;
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
    }
    this.sources.clear();
    this.nextStart = 0;
  }

  close(): void {
    this.sources.clear();
    void this.context.close();
  }
}
