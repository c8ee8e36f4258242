// An ICE restart's new srflx: our public mapping as the first of a few STUN servers to answer sees it.
import { ICE_RESTART_STUN_WAIT_MS } from '../base/constants.js';
import type { Scheduler, TimerHandle } from '../base/scheduler.js';
import type { Endpoint } from '../conn/socket.js';

/** Asks every server at once; the first mapping, 'slow' when none came within ICE_RESTART_STUN_WAIT_MS
 *  (a far server, a lost request: go on with what we have), undefined when every one failed. */
export function firstMapping(servers: Endpoint[], ask: (server: Endpoint) => Promise<Endpoint | undefined>, clock: Scheduler): Promise<Endpoint | 'slow' | undefined> {
  let timer: TimerHandle | undefined;
  return new Promise<Endpoint | 'slow' | undefined>((resolve) => {
    timer = clock.setTimer(ICE_RESTART_STUN_WAIT_MS, () => resolve('slow'));
    let left = servers.length;
    for (const s of servers) {
      void ask(s).catch(() => undefined).then((e) => { if (e) resolve(e); else if (--left === 0) resolve(undefined); });
    }
  }).finally(() => timer?.cancel());
}
