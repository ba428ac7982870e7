// Error types shared by every layer. Messages read `what: expected X, got Y; how to fix`.

/** Base class of every error imagen-ts throws on purpose. */
export class ImagenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor shape or dtype that an op cannot accept, found while the graph is built. */
export class ShapeError extends ImagenError {}

/** A value outside its valid range (options, hyper-parameters, user input). */
export class ValueError extends ImagenError {}

export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new ImagenError(typeof message === "string" ? message : message());
}
