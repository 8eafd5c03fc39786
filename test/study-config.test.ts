/**
 * The study's configuration from the environment: RECIPE_LIMITS gives loop-prone recipes fewer
 * utterances than LIMIT, and a chapter's evaluations honour it; a malformed entry is refused,
 * naming the variable and the fix.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeConfig, recipeLimit, runStudy, studyConfig } from "../src/study/study.js";
import { KitError } from "../src/util/errors.js";
import { miniSplit, syntheticModel, tempDir } from "./support/env.js";

describe("studyConfig: RECIPE_LIMITS", () => {
  it("parses recipe:N entries, which replace LIMIT for those recipes only", () => {
    const config = studyConfig({ LIMIT: "300", RECIPE_LIMITS: "hqq/3:100, quanto/w8a8:50" });
    assert.deepEqual(config.recipeLimits, { "hqq/3": 100, "quanto/w8a8": 50 });
    assert.equal(recipeLimit(config, "hqq/3"), 100);
    assert.equal(recipeLimit(config, "quanto/w8a8"), 50);
    assert.equal(recipeLimit(config, "fp32"), 300);
    assert.equal(recipeLimit(studyConfig({ RECIPE_LIMITS: "hqq/3:7" }), "fp32"), undefined, "no LIMIT: the whole evaluation part");
    assert.match(describeConfig(config), /hqq\/3 on 100, quanto\/w8a8 on 50/);
  });

  it("refuses an entry without a positive count, or with a recipe that cannot run, naming the variable", () => {
    for (const bad of ["hqq/3", "hqq/3:0", "hqq/3:1.5", ":10", "hqq/9:10"]) {
      assert.throws(
        () => studyConfig({ RECIPE_LIMITS: bad }),
        (e: unknown) => e instanceof KitError && e.field === "RECIPE_LIMITS" && /RECIPE_LIMITS/.test(e.message),
        bad,
      );
    }
  });

  it("a chapter's evaluations run each recipe on its own limit", async () => {
    const saved = process.env.PTQ_DATA_DIR;
    process.env.PTQ_DATA_DIR = await tempDir();
    try {
      const model = await syntheticModel({ dModel: 32, heads: 2, layers: 1, seed: 23 });
      const { root } = await miniSplit(6);
      const config = studyConfig({
        MODELS: model,
        SPLITS: "mini",
        LIBRISPEECH_DIR: root,
        RESULTS_DIR: await tempDir(),
        THREADS: "1",
        LIMIT: "4",
        RECIPE_LIMITS: "pytorch/dynamic-int8:2",
        MAX_NEW_TOKENS: "4",
      });
      const rows = await runStudy(config, { recipes: ["fp32", "pytorch/dynamic-int8"] });
      const count = (recipe: string) => rows.find((r) => r.recipe === recipe)?.utterances;
      assert.equal(count("fp32"), 4);
      assert.equal(count("pytorch/dynamic-int8"), 2);
    } finally {
      if (saved === undefined) delete process.env.PTQ_DATA_DIR;
      else process.env.PTQ_DATA_DIR = saved;
    }
  });
});
