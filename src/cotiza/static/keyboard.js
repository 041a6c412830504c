// Keyboard use: "/" jumps to the quotes filter, arrows move between the rows of the ratio
// tables (Enter opens the chart, handled by the rows), Escape closes the chart.

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

/** The next or previous visible row with a chart, in the same table body. */
function neighbour(row, step) {
  let next = step > 0 ? row.nextElementSibling : row.previousElementSibling;
  while (next && (next.hidden || !next.classList.contains("clickable"))) {
    next = step > 0 ? next.nextElementSibling : next.previousElementSibling;
  }
  return next;
}

export function bindKeys({ filter, chart }) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (document.querySelector("dialog[open]")) return; // a dialog handles its own keys
    const target = event.target;
    if (event.key === "/" && !typing(target)) {
      event.preventDefault();
      filter.focus();
      filter.select();
      return;
    }
    if (event.key === "Escape") {
      if (target === filter && filter.value) return; // the search box clears itself first
      if (chart.pairId !== null) {
        event.preventDefault();
        chart.close();
      }
      return;
    }
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && target instanceof HTMLTableRowElement) {
      if (!target.classList.contains("clickable")) return;
      const next = neighbour(target, event.key === "ArrowDown" ? 1 : -1);
      if (next) {
        event.preventDefault();
        next.focus();
      }
    }
  });
}
