// The names `idloc-agent register` registered for this host, kept in the state dir so that they are
// registered again at every start: the overlay holds a name record for NAME_LIFETIME_S only, and only a
// running agent republishes it, so without this file a name lapses a day after a restart.
//
// names.json: {"version":1,"names":["bob","build-box"]}   (normalized names, at most NAMES_MAX_KEPT)
// Written atomically (base/state-file.ts), mode 0600; a corrupt file stops the agent with one line.
import { join } from 'node:path';
import { NAMES_FILE_NAME, NAMES_MAX_KEPT } from './base/constants.js';
import { checkPrivate, corruptStateFile, parseStateJson, readStateFile, writeStateFile, type StateFs } from './base/state-file.js';
import { normalizeName } from './overlay/names.js';

/** What the overlay side needs: the kept names, and a way to keep one more. */
export interface KeptNames {
  list(): readonly string[];
  /** Whether keep(name) would succeed: kept already, or room for one more. */
  room(name: string): boolean;
  /** Keep `name` (normalized); false if NAMES_MAX_KEPT names are kept already. Throws StateFileError
   *  when the file cannot be written. */
  keep(name: string): boolean;
}

const NAMES_FIX = 'fix or remove it (the names in it are registered again at start; `register` adds them back)';

export class NamesState implements KeptNames {
  private readonly names: string[];

  private constructor(private readonly file: string, names: string[], private readonly fs: StateFs | undefined) {
    this.names = names;
  }

  /** Read names.json in stateDir (none yet: no names). Throws StateFileError if it is corrupt or exposed. */
  static load(stateDir: string, fs?: StateFs): NamesState {
    const file = join(stateDir, NAMES_FILE_NAME);
    const text = readStateFile(file, fs);
    if (text === undefined) return new NamesState(file, [], fs);
    checkPrivate(file, fs);
    const o = parseStateJson(file, text, NAMES_FIX);
    const list = o.names;
    if (!Array.isArray(list)) throw corruptStateFile(file, '"names" is not a list', NAMES_FIX);
    if (list.length > NAMES_MAX_KEPT) throw corruptStateFile(file, `more than ${NAMES_MAX_KEPT} names`, NAMES_FIX);
    const names: string[] = [];
    for (const n of list) {
      const norm = typeof n === 'string' ? normalizeName(n) : undefined;
      if (norm === undefined) throw corruptStateFile(file, `${JSON.stringify(n)} is not a valid name`, NAMES_FIX);
      if (!names.includes(norm)) names.push(norm);
    }
    return new NamesState(file, names, fs);
  }

  list(): readonly string[] { return this.names; }

  room(name: string): boolean {
    const n = normalizeName(name);
    return n !== undefined && (this.names.includes(n) || this.names.length < NAMES_MAX_KEPT);
  }

  keep(name: string): boolean {
    const n = normalizeName(name);
    if (n === undefined || !this.room(n)) return false;
    if (this.names.includes(n)) return true;
    const next = [...this.names, n];
    writeStateFile(this.file, JSON.stringify({ version: 1, names: next }) + '\n', this.fs ? { fs: this.fs } : {});
    this.names.push(n);
    return true;
  }
}
