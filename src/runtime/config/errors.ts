/** Every problem found in the configuration, one per line in `message`. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = [...problems];
  }
}
