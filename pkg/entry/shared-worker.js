// The SharedWorker that writes a bus for the pages of its origin that use `ferry` (host.js).
import { Bus } from './browser.js';
import { hostBus } from './host.js';

hostBus(Bus);
