// drover's settings: one table (settings.ts), three sources (argv.ts,
// env.ts, file.ts), one resolver (resolve.ts). Precedence, lowest to highest:
// defaults < config file < DROVER_* environment < command line.

export type { ActionSpec, Config, Group, LogFormat, LogLevel, Parsed, SettingName, SettingSpec, SourceKind } from './types.js';
export { LOG_FORMATS, LOG_LEVELS } from './types.js';
export { ConfigError } from './errors.js';
export { ACTIONS, CLIENT_TIMEOUT_MIN_MS, heartbeatMs, REQUEST_TIMEOUT_MIN_MS, SETTINGS, settingByName, SLOW_THRESHOLD_MIN_MS, TIMEOUT_MIN_MS, WORKER_RSS_MIN } from './settings.js';
export { parseArgv, type Actions } from './argv.js';
export { ENV_CONFIG, isPlumbing } from './env.js';
export { MISSING_APP, resolveConfig, type ResolveInput } from './resolve.js';
export { DEFAULT_FILES, findConfigFile, loadConfig, loadConfigFile, locateCompanionsFile, locateConfig } from './load.js';
export { helpText } from './help.js';
export { placeProblems } from './places.js';
export { parseBind, DEFAULT_HOST, DEFAULT_PORT } from './bind.js';
export { envOf, flagOf } from './names.js';
export { MAX_DURATION_MS } from './values.js';
export {
  COMPANION_DEFAULTS, defaultControlSocket, parseCompanions, splitModule,
  type CompanionConfig, type CompanionDefaults, type ParsedCompanions,
} from '../companions/config.js';
