/**
 * Every message Shoal sends, as a versioned discriminated type with its zod schema. A receiver
 * decodes with the codec and validates against the schema for its subject before touching a field;
 * anything else is counted and dropped (see codec.ts).
 *
 * `v` is the protocol version (1). `t` discriminates. Processor-owned values (input, state, result)
 * are opaque here (`unknown`): only the processor on a host interprets them.
 *
 * The schemas live by conversation in ./messages/: common pieces, pool (heartbeats, leaves,
 * presence), commands (balancer → host), reports (host → balancer), blobs (large states), api
 * (clients). This file is the one place everyone imports them from.
 *
 * Must never do I/O.
 */

export { PROTOCOL_VERSION, errReplySchema, stateRefSchema, wireErrorSchema } from './messages/common.ts'
export * from './messages/pool.ts'
export * from './messages/commands.ts'
export * from './messages/reports.ts'
export * from './messages/blobs.ts'
export * from './messages/api.ts'
