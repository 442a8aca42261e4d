/**
 * The public entry of the `shoal` package: re-exports only.
 *
 *   import { ShoalClient, defineProcessor } from 'shoal'
 */

export {
  ShoalClient,
  type ShoalClientOptions,
  type JobSpec,
  type TypedJobSpec,
  type JobSummary,
  type HostSummary,
  type ShareSummary,
  type ClusterStatus,
  type BalanceSummary,
  type Migration,
} from './sdk/client.ts'
export { Job } from './sdk/job.ts'
export { LocalCluster, type LocalClusterOptions } from './sdk/local-cluster.ts'
export { defineProcessor, processorRef, type Processor, type ProcessorRef, type Range } from './processors/define.ts'
export { ShoalError, type ErrorCode, type WireError } from './errors.ts'
export { Balancer, type BalancerOptions } from './balancer/balancer.ts'
export { Host, type HostOptions } from './worker-host/host.ts'
export { loadConfig, type Config } from './config/mod.ts'
export { startNatsServer, type RunningNatsServer } from './nats-server/launcher.ts'
