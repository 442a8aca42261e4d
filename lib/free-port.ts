/**
 * A TCP port that is free on loopback right now, for processes that must be told their port up
 * front (a host's metrics endpoint in the demo, a Prometheus in tests). Another process could take
 * it before it is bound; whoever binds it then fails loudly, naming the port.
 *
 * Must never keep the port: it is released before the promise resolves.
 */

import net from 'node:net'

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}
