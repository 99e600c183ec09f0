// Object path labels as sd-bus escapes them (bus_label_escape), so that any string can name an object.

/** sd-bus's bus_label_escape: letters stay, digits stay except first, every other byte is _xx. */
export function busLabelEscape(s: string): string {
  if (s === '') return '_';
  let out = '';
  const bytes = Buffer.from(s, 'utf8');
  bytes.forEach((b, i) => {
    const letter = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    const digit = b >= 0x30 && b <= 0x39;
    out += letter || (digit && i > 0) ? String.fromCharCode(b) : '_' + b.toString(16).padStart(2, '0');
  });
  return out;
}

/** The inverse; undefined for a label no escaping could have made. */
export function busLabelUnescape(label: string): string | undefined {
  if (label === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    if (label[i] !== '_') {
      bytes.push(label.charCodeAt(i));
      continue;
    }
    const hex = label.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}
