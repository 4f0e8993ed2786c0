/* The object pages' charts (wired to chart.js once it lands): for now none are drawn. */
export function charts() {
  return {push() {}};
}
