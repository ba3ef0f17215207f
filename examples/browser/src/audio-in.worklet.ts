// AudioWorklet: microphone samples at the context's rate -> 16 kHz mono PCM16, posted in 100 ms chunks.
// Runs on the audio thread; the Live API wants raw little-endian PCM16 at 16 kHz ("audio/pcm;rate=16000").

// The AudioWorkletGlobalScope is not in TypeScript's DOM library: declare the three names used here.
declare const sampleRate: number;
declare function registerProcessor(name: string, processor: new () => AudioWorkletProcessorBase): void;
declare class AudioWorkletProcessorBase {
  readonly port: MessagePort;
}
declare const AudioWorkletProcessor: typeof AudioWorkletProcessorBase;

const OUTPUT_RATE = 16_000;
const CHUNK_SAMPLES = OUTPUT_RATE / 10;

class Pcm16Downsampler extends AudioWorkletProcessor {
  private readonly step = sampleRate / OUTPUT_RATE; // input samples per output sample (3 at 48 kHz)
  private phase = 0;
  private sum = 0;
  private count = 0;
  private chunk = new Int16Array(CHUNK_SAMPLES);
  private filled = 0;

  process(inputs: Float32Array[][]): boolean {
    const channel = inputs[0]?.[0];
    if (channel === undefined) return true;
    for (const sample of channel) {
      // Averaging the input samples that make up one output sample is a cheap low-pass before decimating.
      this.sum += sample;
      this.count += 1;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  private push(value: number): void {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === CHUNK_SAMPLES) {
      this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
      this.chunk = new Int16Array(CHUNK_SAMPLES);
      this.filled = 0;
    }
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
