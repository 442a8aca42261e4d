/**
 * Serves one prom-client registry over HTTP (`GET /metrics`) for Prometheus to scrape; `GET /`
 * says where the metrics are. Port 0 picks a free port (tests); the bound port is returned.
 *
 * Must never throw into the event loop: a failed scrape answers 500 with the error's message, and a
 * port that cannot be bound is reported once as E_METRICS_PORT by `start`.
 */

import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { ShoalError } from '../errors.ts'

export interface MetricsServer {
  /** The port actually bound. */
  readonly port: number
  readonly url: string
  close(): Promise<void>
}

/** Listens on `host:port` and serves `registry` at /metrics. */
export async function startMetricsServer(registry: Registry, port: number, host = '0.0.0.0'): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${e.message}\n`),
      )
      return
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('Shoal metrics: GET /metrics (Prometheus text format)\n')
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new ShoalError('E_METRICS_PORT', `cannot serve metrics on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the port is in use (choose another with --metrics-port)' : e.message}`, { cause: e })),
    )
    server.listen(port, host, () => resolve())
  })
  // Scrapers keep connections alive; do not let them hold the process open on stop.
  server.unref()
  const bound = (server.address() as AddressInfo).port
  return {
    port: bound,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
