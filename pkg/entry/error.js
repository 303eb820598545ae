// FerryError, shared by every entry of the package (`ferry` and `ferry/workers`).

/** Every rejection and throw of ferry: an Error with a `code` from pkg/README.md. */
export class FerryError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'FerryError';
    this.code = code;
  }

  // The engine raises its errors as plain Errors named FerryError; they count too.
  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'FerryError' && typeof value.code === 'string';
  }
}
