// The allocation chart: stored assignments per arm against the configured weights, as inline SVG.
import { h, s, percent } from "./dom.js";

const WIDTH = 600;
const LABEL = 140;
const ROW = 34;

/** One chart for one phase (or bucket version): `arms` are the stats' ArmStats. */
export function allocationChart(arms, title) {
  const plot = WIDTH - LABEL - 110;
  const height = arms.length * ROW + 24;
  const summary = arms
    .map((a) => `${a.armId}: ${Number(a.assignments || 0)} (${percent(a.observedFraction || 0)}, weight ${percent(a.weight || 0)})`)
    .join("; ");
  const svg = s(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", class: "chart", "aria-label": `${title}: ${summary}` },
    s("title", {}, `${title}: ${summary}`),
  );
  arms.forEach((arm, i) => {
    const y = i * ROW + 4;
    const observed = Number(arm.observedFraction || 0);
    const weight = Number(arm.weight || 0);
    svg.append(
      s("text", { x: 0, y: y + 17, class: "arm-label" }, String(arm.armId).slice(0, 18)),
      s("rect", { x: LABEL, y, width: plot, height: 24, class: "track" }),
      s("rect", { x: LABEL, y, width: Math.max(0, observed * plot), height: 24, class: "bar", "data-arm": arm.armId }),
      s("line", { x1: LABEL + weight * plot, x2: LABEL + weight * plot, y1: y - 2, y2: y + 26, class: "weight" }),
      s("text", { x: LABEL + plot + 6, y: y + 17, class: "count" }, `${Number(arm.assignments || 0)} · ${percent(observed)}`),
    );
  });
  svg.append(
    s("line", { x1: LABEL, x2: LABEL + 14, y1: height - 8, y2: height - 8, class: "weight" }),
    s("text", { x: LABEL + 18, y: height - 4, class: "legend" }, "configured weight"),
    s("rect", { x: LABEL + 150, y: height - 14, width: 14, height: 10, class: "bar" }),
    s("text", { x: LABEL + 170, y: height - 4, class: "legend" }, "stored assignments"),
  );
  return svg;
}

/** The SRM verdict of a stats reply (or one phase of it). */
export function srmBadge(stats) {
  if (stats.srmPValue === undefined || stats.srmPValue === null) {
    return h("span", { class: "badge muted", "data-srm": "none" }, "SRM: not enough data");
  }
  const p = Number(stats.srmPValue);
  const text = `p = ${p < 0.0001 ? p.toExponential(2) : p.toFixed(4)}`;
  return stats.srmWarning
    ? h("span", { class: "badge warning", "data-srm": "warning" }, `SRM warning (${text})`)
    : h("span", { class: "badge healthy", "data-srm": "healthy" }, `Healthy split (${text})`);
}

/** Phase sections: the stats' `phases` when the API returns them, else the one bucket version. */
export function allocation(stats) {
  const phases = stats.phases && stats.phases.length ? [...stats.phases].sort((a, b) => (b.phase || 0) - (a.phase || 0)) : null;
  if (!phases) {
    const title = `Bucket version ${stats.bucketVersion || 0}`;
    return [
      h("p", {}, srmBadge(stats), ` ${Number(stats.totalAssignments || 0)} stored assignments`),
      allocationChart(stats.arms || [], title),
    ];
  }
  return phases.map((phase) => {
    const since = phase.startTime ? ` since ${new Date(phase.startTime).toLocaleString()}` : "";
    return h(
      "section",
      { class: "phase", "data-phase": phase.phase || 0 },
      h("h3", {}, `Phase ${phase.phase || 0}${since}`),
      h("p", {}, srmBadge(phase), ` ${Number(phase.totalAssignments || 0)} stored assignments`),
      allocationChart(phase.arms || [], `Phase ${phase.phase || 0}`),
    );
  });
}
