// The functions the `tools` profile declares, answered in the page: the model calls, the page computes.
import { Behavior, type LiveConnectConfig } from "@google/genai";

export type ToolResult = Record<string, unknown>;

/**
 * The functions a session's config declares NON_BLOCKING: the model keeps talking while they run, and their
 * result is spoken when the response's `scheduling` says. livetoken writes every function's behaviour into
 * `connect.config` (the default differs from model to model), so the page never guesses.
 */
export function nonBlockingFunctions(config: LiveConnectConfig): Set<string> {
  const names = new Set<string>();
  for (const tool of config.tools ?? []) {
    if (!("functionDeclarations" in tool)) continue; // a CallableTool: never in a token's config
    for (const declaration of tool.functionDeclarations ?? []) {
      if (declaration.behavior === Behavior.NON_BLOCKING && declaration.name) names.add(declaration.name);
    }
  }
  return names;
}

/** Run one function call from the model; unknown names and bad arguments come back as `{error}`. */
export function runTool(name: string, args: Record<string, unknown> | undefined): ToolResult {
  try {
    switch (name) {
      case "get_current_time":
        return { utc: new Date().toISOString() };
      case "calculate":
        return { result: calculate(String(args?.["expression"] ?? "")) };
      default:
        return { error: `unknown function ${name}` };
    }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** + - * / and parentheses over decimal numbers; never eval() what a model (or a user) wrote. */
export function calculate(expression: string): number {
  const tokens = expression.match(/\d+(?:\.\d+)?|\.\d+|[-+*/()]|\S/g) ?? [];
  let pos = 0;
  const peek = (): string | undefined => tokens[pos];
  const take = (): string | undefined => tokens[pos++];

  const primary = (): number => {
    const token = take();
    if (token === "(") {
      const value = sum();
      if (take() !== ")") throw new Error("missing )");
      return value;
    }
    if (token === "-") return -primary();
    if (token === "+") return primary();
    if (token !== undefined && /^[\d.]/.test(token)) return Number(token);
    throw new Error(token === undefined ? "unexpected end of expression" : `unexpected ${token}`);
  };
  const product = (): number => {
    let value = primary();
    while (peek() === "*" || peek() === "/") value = take() === "*" ? value * primary() : value / primary();
    return value;
  };
  const sum = (): number => {
    let value = product();
    while (peek() === "+" || peek() === "-") value = take() === "+" ? value + product() : value - product();
    return value;
  };

  const value = sum();
  if (pos !== tokens.length) throw new Error(`unexpected ${tokens[pos]}`);
  if (!Number.isFinite(value)) throw new Error("the result is not a finite number");
  return value;
}
