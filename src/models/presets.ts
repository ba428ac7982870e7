// U-Net presets: the paper's three cascade models (App. F and B.1) and small ones that train on a CPU.
import { ValueError } from "../util/errors.js";
import type { UNetConfig } from "./unet.js";

const common = {
  inChannels: 3, outChannels: 3, headDim: 64, textAttention: "concat", selfAttention: true,
  textPooling: "attention", dropout: 0,
} as const;

export const presets: Record<string, UNetConfig> = {
  /** 64x64 base (App. F): 512 channels, mults [1,2,3,4], 3 blocks per level, attention at 32, 16, 8; T5-XXL text
   * (4096 wide) projected once to 1024 for pooling and attention. */
  "imagen-base-64": { ...common, imageSize: 64, channels: 512, channelMults: [1, 2, 3, 4], numResBlocks: [3, 3, 3, 3], attnLevels: [1, 2, 3], textDim: 4096, textProjDim: 1024, efficient: false, lowResCond: false },
  /** 64 -> 256 Efficient U-Net (App. B.1/F): 128 channels, mults [1,2,4,8], blocks [2,4,8,8], attention at the last level. */
  "imagen-sr-256": { ...common, imageSize: 256, channels: 128, channelMults: [1, 2, 4, 8], numResBlocks: [2, 4, 8, 8], attnLevels: [3], textDim: 4096, textProjDim: 1024, efficient: true, lowResCond: true },
  /**
   * 256 -> 1024 Efficient U-Net: as above without self-attention; text cross-attention kept. With 8 blocks
   * at the lowest level this layout has 560M parameters, not the paper's 400M; 5 blocks there give 416M.
   */
  "imagen-sr-1024": { ...common, imageSize: 1024, channels: 128, channelMults: [1, 2, 4, 8], numResBlocks: [2, 4, 8, 5], attnLevels: [3], textDim: 4096, textProjDim: 1024, efficient: true, lowResCond: true, selfAttention: false, textAttention: "cross" },
  /** Small CPU presets. */
  "tiny-base-32": { ...common, imageSize: 32, channels: 64, channelMults: [1, 2, 3], numResBlocks: [1, 2, 2], attnLevels: [2], headDim: 32, textDim: 128, efficient: false, lowResCond: false },
  /** 64 px, ~4 GFLOP per evaluation: the sampling benchmark's model. */
  "tiny-base-64": { ...common, imageSize: 64, channels: 32, channelMults: [1, 2, 4], numResBlocks: [1, 2, 2], attnLevels: [2], headDim: 32, textDim: 128, efficient: false, lowResCond: false },
  "tiny-sr-128": { ...common, imageSize: 128, channels: 32, channelMults: [1, 2, 4, 4], numResBlocks: [1, 1, 2, 2], attnLevels: [3], headDim: 32, textDim: 128, efficient: true, lowResCond: true },
  "small-base-64": { ...common, imageSize: 64, channels: 128, channelMults: [1, 2, 3, 4], numResBlocks: [2, 2, 2, 2], attnLevels: [2, 3], textDim: 512, efficient: false, lowResCond: false },
};

/** The parameter counts the paper gives for its three cascade models (section 2.4, App. F). */
export const paperParams: Record<string, number> = { "imagen-base-64": 2e9, "imagen-sr-256": 600e6, "imagen-sr-1024": 400e6 };

export function presetByName(name: string): UNetConfig {
  const p = presets[name];
  if (!p) throw new ValueError(`preset: unknown "${name}"; choose one of ${Object.keys(presets).join(", ")}`);
  return structuredClone(p);
}
