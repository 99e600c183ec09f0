// Names of machines and of the units that hold them, with the rules machined uses (reference §2.1).

const MACHINE_NAME_MAX = 64;

/** A machine name must be a valid host name: ASCII letters, digits, '-' and '.', 1..64 characters,
 *  no label that starts with '.' or '-' or ends with '-', no '..', no trailing dot. */
export function isValidMachineName(name: string): boolean {
  if (name.length === 0 || name.length > MACHINE_NAME_MAX) return false;
  if (!/^[A-Za-z0-9.-]+$/.test(name)) return false;
  for (const label of name.split('.')) {
    if (label.length === 0) return false; // leading, trailing or double dot
    if (label.startsWith('-') || label.endsWith('-')) return false;
  }
  return true;
}

/** systemd's unit name escaping (unit_name_escape): '/' becomes '-', a leading '.' and every byte
 *  outside [A-Za-z0-9:_.] (so '-' too) becomes \xNN. */
function escapeUnitName(s: string): string {
  let out = '';
  const bytes = Buffer.from(s, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    const ch = String.fromCharCode(c);
    if (ch === '/') out += '-';
    else if ((ch === '.' && i === 0) || !/[A-Za-z0-9:_.]/.test(ch)) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out;
}

export function scopeUnitName(machine: string): string {
  return `machine-${escapeUnitName(machine)}.scope`;
}
