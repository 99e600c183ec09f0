// The benchmarks' helper programs (bench/*.c), compiled where a benchmark keeps its temporary files.
import { join } from 'node:path';
import { ROOT } from '../test/helpers/daemon.js';
import { must } from '../test/helpers/run.js';

/** Compiles bench/NAME.c into dir/NAME (libs: extra -l flags); gives the program's path. */
export async function compile(name: string, dir: string, libs: string[] = []): Promise<string> {
  const program = join(dir, name);
  await must('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', program, join(ROOT, `bench/${name}.c`), ...libs]);
  return program;
}
