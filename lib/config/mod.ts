/**
 * Public surface of lib/config. Re-exports only: no logic lives here, so importing the config
 * module never does more than importing its parts.
 */
export {
  ConfigSchema,
  CROSS_FIELD_RULES,
  LOG_LEVELS,
  configKeys,
  defaultConfig,
  envVarName,
  KEYS as CONFIG_KEYS,
  type Config,
  type ConfigInput,
  type CrossFieldRule,
  type DeepPartial,
  type DeepReadonly,
  type KeyInfo,
  type KeyMeta,
} from './schema.ts'
export { assertKnownKey, loadConfig, setConfigValue, type LoadConfigOptions } from './load.ts'
