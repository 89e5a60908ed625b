// Reads [[condition, attributes], ...] as JSON on stdin, prints [true|false, ...]:
// GrowthBook's JS SDK's evalCondition on each, with the saved groups given as argv[2].
const { evalCondition } = require("@growthbook/growthbook");
const groups = JSON.parse(process.argv[2] || "{}");
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const pairs = JSON.parse(input);
  process.stdout.write(JSON.stringify(pairs.map(([c, a]) => evalCondition(a, c, groups))));
});
