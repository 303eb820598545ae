// handleHttp(): the bus over HTTP, for forwarding from browsers and other services.
import { FerryError } from './error.js';

/** Serves `request` from the bus `name` in `namespace` (see API.md). */
export async function handleHttp(request, namespace, { token, name = 'ferry', maxBodyBytes = 1048576 } = {}) {
  throw new FerryError('INVALID_ARGUMENT', 'handleHttp is not built yet');
}
