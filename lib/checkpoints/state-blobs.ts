/**
 * Checkpoint states too large to travel inline (over half of protocol.maxMessageBytes, and so
 * possibly over NATS's 1 MiB max_payload) go to a JetStream Object Store bucket; messages and KV
 * records then carry a `stateRef` naming the object. Only the balancer opens the store: hosts
 * send and fetch states through it in chunks (lib/balancer/blob-proxy.ts, lib/worker-host/
 * blob-client.ts). The balancer deletes an object once a newer checkpoint or the share's end
 * makes it useless.
 *
 * Must never decide when a checkpoint counts: that is the balancer's ack after its KV write.
 */

import type { NatsConnection } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import { Objm, type ObjectStore } from '@nats-io/obj'
import { ShoalError } from '../errors.ts'
import type { Subjects } from '../protocol/subjects.ts'

export interface StateRef {
  name: string
  bytes: number
}

/** Whether a state of `stateBytes` should travel inside a message. */
export function stateFitsInline(stateBytes: number, maxMessageBytes: number): boolean {
  return stateBytes <= Math.floor(maxMessageBytes / 2)
}

export class StateBlobs {
  private constructor(private readonly os: ObjectStore) {}

  /**
   * Opens the cluster's object store, creating it with `replicas` when missing (unset, as for
   * `nats.replicas`: 3 when the server is part of a NATS cluster, else 1); an existing one keeps
   * its own settings. Whoever comes first (a balancer, or a host with a large state) creates it.
   */
  static async open(nc: NatsConnection, subjects: Subjects, replicas?: number): Promise<StateBlobs> {
    const clustered = typeof nc.info?.cluster === 'string' && nc.info.cluster !== ''
    try {
      // checkAPI off: no `$JS.API.INFO` round trip, which a host's permissions (lib/auth) do not
      // grant; an existing store is found by its stream info, which they do.
      return new StateBlobs(await new Objm(jetstream(nc, { checkAPI: false })).create(subjects.bucket('ckpt'), { replicas: replicas ?? (clustered ? 3 : 1) }))
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot open the checkpoint object store: ${(e as Error).message}`, { cause: e })
    }
  }

  /** Stores the packed state `data` under `name`; resolves once JetStream has it. */
  async putBytes(name: string, data: Uint8Array): Promise<void> {
    try {
      await this.os.putBlob({ name }, data)
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot store checkpoint state ${name} (${data.length} bytes): ${(e as Error).message}`, { cause: e })
    }
  }

  /** The packed state stored under `name`. */
  async getBytes(name: string): Promise<Uint8Array> {
    let data: Uint8Array | null
    try {
      data = await this.os.getBlob(name)
    } catch (e) {
      throw new ShoalError('E_STORE', `cannot read checkpoint state ${name}: ${(e as Error).message}`, { cause: e })
    }
    if (!data) throw new ShoalError('E_STORE', `checkpoint state ${name} is missing from the object store`)
    return data
  }

  /** Best effort: a leftover object wastes space, it never changes a result. */
  async delete(name: string): Promise<void> {
    await this.os.delete(name).catch(() => undefined)
  }
}
