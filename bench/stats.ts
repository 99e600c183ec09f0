// The few statistics the benchmarks report, over samples in any order.
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);

/** The p-th percentile (0..100), the nearest sample at or below it. */
export const percentile = (xs: readonly number[], p: number): number => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
};
export const median = (xs: readonly number[]): number => percentile(xs, 50);
export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
