// The part of usocket (Unix sockets with descriptor passing; dbus-next uses it too) that we call.
declare module 'usocket' {
  import { Duplex } from 'node:stream';
  class USocket extends Duplex {
    constructor(opts: { fd?: number; path?: string });
    /** 'fds' (number[]) comes with the descriptors of what is read next. */
  }
  const usocket: { USocket: typeof USocket };
  export default usocket;
}
