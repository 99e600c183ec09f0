// The part of usocket (Unix sockets with descriptor passing; dbus-next uses it too) that we call.
declare module 'usocket' {
  import { Duplex } from 'node:stream';
  class USocket extends Duplex {
    constructor(opts: { fd?: number; path?: string });
    write(chunk: Buffer | { data?: Buffer; fds?: number[]; callback?: () => void }, cb?: (err?: Error | null) => void): boolean;
    on(event: 'fds', listener: (fds: number[]) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }
  const usocket: { USocket: typeof USocket };
  export default usocket;
}
