// Types of `ferry/inspector` (entry/inspector.js): the <ferry-inspector> element and the
// sources it reads a bus from, a bus of this browser (localSource) or an edge's
// handleHttp (edgeSource).
import type { Bus, BrowsedPage, BrowseOptions, BusStats, MemberStats, RedriveOptions } from './index.js';

export type { BrowsedPage, BrowseOptions, BusStats, MemberStats, RedriveOptions } from './index.js';

/** Where a group member runs, as its id tells; "edge-pull" is an edge's HTTP pulls. */
export type MemberContext = MemberStats['context'];

/**
 * Stats as the inspector reads them: `bus.stats()`'s, where a bus of an older ferry
 * may lack `deadLetter` (then a topic ending in `.dlq` counts as a dead-letter topic)
 * and `members` (then the owners of partitions stand for the members).
 */
export type InspectorStats = Omit<BusStats, 'topics' | 'members'> & {
  topics: Array<Omit<BusStats['topics'][number], 'deadLetter'> & { deadLetter?: boolean }>;
  members?: MemberStats[];
};

/** What the element reads a bus through; any object of this shape will do. */
export interface InspectorSource {
  /** Shown in the element's header. */
  label: string;
  stats(): Promise<InspectorStats>;
  browse(options: BrowseOptions): Promise<BrowsedPage>;
  /** How many dead letters moved back. */
  redrive(options: RedriveOptions): Promise<number>;
  /** How many messages of the dead-letter topic were removed. */
  purge(options: { topic: string }): Promise<number>;
  /** Calls `callback` when the bus may have changed; returns what unsubscribes. Without it the element polls only. */
  onWake?(callback: () => void): () => void;
}

/**
 * A source over a bus of this browser. `name` (the bus's name, given to `Bus.open`)
 * lets it wake on the BroadcastChannel `ferry:{name}` after each commit.
 */
export declare function localSource(bus: Bus, name?: string): InspectorSource;

export interface EdgeSourceOptions {
  /** The base URL of the edge's `handleHttp` (its `/v1/...` paths are under it); relative to the page's location. */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** More headers for each request, or a function giving them (a token that changes). */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
}

/**
 * A source over an edge (`handleHttp` of `ferry/workers`): `GET /v1/stats`, `GET
 * /v1/topics/{topic}/messages`, `POST /v1/topics/{topic}/redrive` and `.../purge`.
 * An error answer rejects with a `FerryError` of its code and message. No wake-ups.
 */
export declare function edgeSource(options: EdgeSourceOptions): InspectorSource;

/**
 * `<ferry-inspector>`: shows one bus and lets an operator redrive and purge its dead
 * letters. Attributes: `bus="NAME"` (opens the bus of this browser itself), or
 * `url="…"` and `token="…"` (an edge); `interval` (ms between stats polls, default
 * 1000, at least 250). Wake-ups refresh it at most 4 times a second, one request at a
 * time; it stops when disconnected.
 */
export declare class FerryInspector extends HTMLElement {
  static readonly observedAttributes: string[];
  /** The source shown: one set here wins over the attributes; `null` goes back to them. */
  source: InspectorSource | null;
  /** Ms between stats polls (the `interval` attribute). */
  interval: number;
  /** Asks for a refresh now (coalesced with the others). */
  refresh(): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'ferry-inspector': FerryInspector;
  }
}
