// A small assert for the contract suite, the same in Node, pages and workers.

export class AssertionError extends Error {}

function fail(message) {
  throw new AssertionError(message);
}

function same(a, b) {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => same(a[k], b[k]));
}

const show = (v) => {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
};

export const assert = {
  ok(value, message = 'expected a truthy value') {
    if (!value) fail(message);
  },
  equal(actual, expected, message) {
    if (!Object.is(actual, expected)) fail(`${message ? message + ': ' : ''}${show(actual)} !== ${show(expected)}`);
  },
  deepEqual(actual, expected, message) {
    if (!same(actual, expected)) fail(`${message ? message + ': ' : ''}${show(actual)} does not deep-equal ${show(expected)}`);
  },
  match(text, pattern, message) {
    if (!pattern.test(text)) fail(`${message ? message + ': ' : ''}${show(text)} does not match ${pattern}`);
  },
  /** Awaits `promise`, which must reject; returns the error. */
  async rejects(promise, message = 'expected a rejection') {
    try {
      await promise;
    } catch (e) {
      return e;
    }
    fail(message);
  },
  /** Calls `f`, which must throw; returns the error. */
  throws(f, message = 'expected a throw') {
    try {
      f();
    } catch (e) {
      return e;
    }
    fail(message);
  },
};
