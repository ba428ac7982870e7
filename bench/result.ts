// One benchmark figure, as written to bench/results/latest.json (`against` names a baseline that is not
// PyTorch; it is printed, not written).
export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  baseline?: number;
  ratio?: number;
  against?: string;
}
