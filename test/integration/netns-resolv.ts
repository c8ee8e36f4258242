// /etc/netns/NS/resolv.conf for a lab namespace: `ip netns exec NS` mounts it over /etc/resolv.conf, so
// the programs a test runs there resolve through the server it names (an agent's --dns responder).
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ETC_NETNS = '/etc/netns';

/** /etc/netns/NS/resolv.conf for one namespace; the function returned removes it (and /etc/netns if we made
 *  it and nothing else is in it). Also removed when the process exits, whatever way it does. */
export function netnsResolvConf(ns: string, text: string): () => void {
  const madeRoot = !existsSync(ETC_NETNS);
  const dir = join(ETC_NETNS, ns);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    process.off('exit', remove);
    rmSync(dir, { recursive: true, force: true });
    if (madeRoot) try { rmdirSync(ETC_NETNS); } catch { /* another run's namespace has one too */ }
  };
  process.on('exit', remove);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'resolv.conf'), text);
  return remove;
}

