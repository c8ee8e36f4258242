// Softphones over the overlay, for sip.test.ts: sipp call runs and baresip calls with a tone, between two
// lab hosts addressed by an overlay address (or a name), each process stopped by its pid.
//
//   sippCalls: `sipp -sn uas` on the callee's overlay address, `sipp -sn uac` on the caller's, N calls at
//     R calls/s; the verdict is sipp's own statistics file (successful, failed, retransmissions).
//   baresipCall: the callee auto-answers; both send a 440 Hz sine (ausine, 48 kHz: opus) and record what
//     they decoded (sndfile); the callee's decoded WAV is read back: its RMS, and the share of 20 ms
//     frames that carry the tone (a call whose media never arrived is silence).
// baresip is told `net_interface idloc0` and listens on the overlay address, so its SDP names the
// overlay address (with the host's LAN address the media would go around the overlay, and not arrive).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import type { Lab, LabProcess } from './lab.js';

export const SIP_PORT = 5060;
const SIPP_UAC_PORT = 5070;

/** Why the SIP tests cannot run here, or undefined. */
export function sipMissing(): string | undefined {
  for (const bin of ['sipp', 'baresip']) {
    try { execFileSync('which', [bin], { stdio: 'ignore' }); } catch { return `${bin} is not installed (apt-get install sipp baresip-core)`; }
  }
  return undefined;
}

/** "a.b.c.d:port" or "[v6]:port". */
export const sipHostPort = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

export interface SippResult { code: number | null; successful: number; failed: number; retransmissions: number; output: string }

export interface SippOptions {
  calls?: number;
  rate?: number;
  /** 'u1' UDP (default) or 't1' TCP, one connection. */
  transport?: 'u1' | 't1';
  /** A scenario file for the caller instead of sipp's built-in uac. */
  scenario?: string;
  /** A scenario file for the callee instead of sipp's built-in uas. */
  uasScenario?: string;
  /** What the caller dials instead of the callee's address: a name its resolver knows. */
  remote?: string;
}

/** One sipp run: callee `to` on `toAddress`, caller `from` on `fromAddress`. */
export async function sippCalls(lab: Lab, from: string, fromAddress: string, to: string, toAddress: string, o: SippOptions = {}): Promise<SippResult> {
  const calls = o.calls ?? 20, rate = o.rate ?? 5, t = o.transport ?? 'u1';
  const dir = join(lab.dir, `sipp-${from}-${to}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const stat = join(dir, 'uac.csv');
  const uas = lab.spawn(to, ['sipp', ...(o.uasScenario ? ['-sf', o.uasScenario] : ['-sn', 'uas']), '-i', toAddress, '-p', String(SIP_PORT), '-t', t,
    '-nostdin', '-timeout', '90s'], { logFile: join(dir, 'uas.log') });
  try {
    await waitListening(lab, to, SIP_PORT, t === 't1' ? 'tcp' : 'udp');
    const r = await lab.exec(from, ['sipp', ...(o.scenario ? ['-sf', o.scenario] : ['-sn', 'uac']), o.remote ? `${o.remote}:${SIP_PORT}` : sipHostPort(toAddress, SIP_PORT), '-i', fromAddress,
      '-p', String(SIPP_UAC_PORT), '-t', t, '-m', String(calls), '-r', String(rate), '-l', String(calls), '-nostdin',
      '-timeout', '60s', '-timeout_error', '-trace_stat', '-stf', stat], { allowFail: true, timeoutMs: 90_000 });
    const s = lastStats(stat);
    return { code: r.code, ...s, output: r.stdout.slice(-1500) + r.stderr.slice(-500) };
  } finally {
    await lab.stopProcess(uas);
  }
}

/** The last row of a sipp statistics file: cumulative successful and failed calls, retransmissions. */
function lastStats(file: string): { successful: number; failed: number; retransmissions: number } {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return { successful: 0, failed: 0, retransmissions: 0 }; }
  const rows = text.trim().split('\n').map((l) => l.split(';'));
  const head = rows[0] ?? [], last = rows.at(-1) ?? [];
  const get = (k: string) => Number(last[head.indexOf(k)] ?? NaN);
  return { successful: get('SuccessfulCall(C)'), failed: get('FailedCall(C)'), retransmissions: get('Retransmissions(C)') };
}

async function waitListening(lab: Lab, node: string, port: number, proto: 'udp' | 'tcp'): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec(node, ['ss', '-Hn', proto === 'udp' ? '-ul' : '-tl', `sport = :${port}`], { allowFail: true });
    if (r.stdout.trim()) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`sipp in ${node} is not listening on ${proto} ${port}`);
}

/** One of sipp's built-in scenarios as XML (`sipp -sd` prints it, and exits non-zero). */
function builtInScenario(name: 'uac' | 'uas'): string {
  const out = spawnSync('sipp', ['-sd', name], { encoding: 'utf8' }).stdout ?? '';
  if (!out.includes('<scenario')) throw new Error(`sipp -sd ${name} printed no scenario`);
  return out;
}

/** sipp's built-in caller with one header of `bytes` more in its INVITE (RFC 3261 18.1.1: over 1300
 *  bytes, SIP goes over TCP). */
export function largeInviteScenario(dir: string, bytes: number): string {
  const base = builtInScenario('uac');
  const padded = base.replace(/(Subject: Performance Test\n)(\s*Content-Type: application\/sdp)/, `$1      X-Padding: ${'x'.repeat(bytes)}\n$2`);
  if (padded === base) throw new Error('sipp\'s uac scenario has no INVITE Subject line to pad after');
  const file = join(dir, 'uac-large-invite.xml');
  writeFileSync(file, padded);
  return file;
}

/** sipp's built-in callee, answering with SDP that names another host's media address (`ip`:`port`) and
 *  opus at payload type `pt`, as a B2BUA or a media server would. */
export function mediaElsewhereScenario(dir: string, ip: string, port: number, pt: number): string {
  const base = builtInScenario('uas');
  const six = ip.includes(':') ? 6 : 4;
  const sdp = base
    .replace(/o=user1 (\d+) (\d+) IN IP\[local_ip_type\] \[local_ip\]/, `o=user1 $1 $2 IN IP${six} ${ip}`)
    .replace(/c=IN IP\[media_ip_type\] \[media_ip\]/, `c=IN IP${six} ${ip}`)
    .replace(/m=audio \[media_port\] RTP\/AVP 0\n(\s*)a=rtpmap:0 PCMU\/8000/, `m=audio ${port} RTP/AVP ${pt}\n$1a=rtpmap:${pt} opus/48000/2`);
  if (!sdp.includes(`c=IN IP${six} ${ip}`) || !sdp.includes(`opus/48000/2`)) throw new Error('sipp\'s uas scenario SDP did not take the media address');
  const file = join(dir, 'uas-media-elsewhere.xml');
  writeFileSync(file, sdp);
  return file;
}

export interface Tone { rms: number; toneShare: number; seconds: number; file: string }

/** A baresip call from `from` to `to` (sip:b@TARGET, TARGET an overlay address or a name) lasting
 *  `seconds`; what the callee decoded. */
export async function baresipCall(lab: Lab, from: { host: string; address: string }, to: { host: string; address: string }, target: string, seconds = 5): Promise<Tone> {
  const dir = join(lab.dir, `baresip-${from.host}-${to.host}-${Date.now()}`);
  const callee = baresipConfig(join(dir, 'callee'), to.address, 'b', true);
  const caller = baresipConfig(join(dir, 'caller'), from.address, 'a', false);
  const b = lab.spawn(to.host, ['baresip', '-f', callee, '-t', String(seconds + 12)], { logFile: join(dir, 'callee.log') });
  try {
    await waitListening(lab, to.host, SIP_PORT, 'udp');
    await baresipDial(lab, from, target, seconds, caller);
  } finally {
    await lab.stopProcess(b);
  }
  const rec = join(callee, 'rec');
  const dec = readdirSync(rec).filter((f) => f.endsWith('-dec.wav')).sort().at(-1);
  if (!dec) return { rms: 0, toneShare: 0, seconds: 0, file: '' };
  return { ...wavTone(join(rec, dec)), file: join(rec, dec) };
}

/** baresip in `from` dials sip:b@TARGET and hangs up after `seconds` (plus set-up time). */
export async function baresipDial(lab: Lab, from: { host: string; address: string }, target: string, seconds: number, config?: string): Promise<void> {
  const dir = config ?? baresipConfig(join(lab.dir, `baresip-${from.host}-${Date.now()}`), from.address, 'a', false);
  const uri = `sip:b@${target.includes(':') ? `[${target}]` : target}`;
  const a: LabProcess = lab.spawn(from.host, ['baresip', '-f', dir, '-t', String(seconds + 2), '-e', `/dial ${uri}`], { logFile: join(dir, 'caller.log') });
  try {
    await a.exited;
  } finally {
    await lab.stopProcess(a);
  }
}

function baresipConfig(dir: string, address: string, user: string, answer: boolean): string {
  mkdirSync(join(dir, 'rec'), { recursive: true });
  writeFileSync(join(dir, 'config'), [
    'poll_method epoll', `sip_listen ${sipHostPort(address, SIP_PORT)}`, 'net_interface idloc0',
    'audio_player aubridge,x', 'audio_source ausine,440', 'audio_alert aubridge,x',
    'module_path /usr/lib/baresip/modules', 'module menu.so', 'module opus.so', 'module ausine.so', 'module aubridge.so',
    'module sndfile.so', 'module account.so', `snd_path ${join(dir, 'rec')}`, '',
  ].join('\n'));
  const host = address.includes(':') ? `[${address}]` : address;
  writeFileSync(join(dir, 'accounts'), `<sip:${user}@${host}>;regint=0${answer ? ';answermode=auto' : ''}\n`);
  return dir;
}

/** RMS of a 16-bit PCM WAV, and the share of its 20 ms frames whose RMS is over a tenth of full scale's
 *  hundredth (a sine from ausine is near 11,500; silence is 0). */
export function wavTone(file: string): { rms: number; toneShare: number; seconds: number } {
  const b = readFileSync(file);
  if (b.length <= 44) return { rms: 0, toneShare: 0, seconds: 0 };
  const channels = b.readUInt16LE(22), rate = b.readUInt32LE(24);
  const frame = Math.max(1, Math.round(rate * channels * 0.02));
  let sum = 0, n = 0, frames = 0, toned = 0, fs = 0, fn = 0;
  for (let i = 44; i + 1 < b.length; i += 2) {
    const v = b.readInt16LE(i);
    sum += v * v; n++; fs += v * v; fn++;
    if (fn === frame) { frames++; if (Math.sqrt(fs / fn) > 300) toned++; fs = 0; fn = 0; }
  }
  return { rms: Math.sqrt(sum / n), toneShare: frames ? toned / frames : 0, seconds: n / channels / rate };
}
