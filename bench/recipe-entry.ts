import type { Expansion, RecipeOptions } from "../src/recipes/catalog.js";

/** A RECIPES entry: a recipe id, optionally "@accuracy-level=4" (MatMulNBits with int8 activations) and "@expand=none|decoder|all". */
export function parseRecipeEntry(entry: string): { id: string; options: RecipeOptions } {
  const [id, ...settings] = entry.split("@");
  const options: RecipeOptions = {};
  for (const setting of settings) {
    const level = /^accuracy-level=(0|4)$/.exec(setting);
    const expand = /^expand=(none|decoder|all)$/.exec(setting);
    if (level) options.accuracyLevel = Number(level[1]) as 0 | 4;
    else if (expand) options.expand = expand[1] as Expansion;
    else throw new Error(`RECIPES entry '${entry}': only @accuracy-level=0|4 and @expand=none|decoder|all are understood`);
  }
  return { id: id!, options };
}
