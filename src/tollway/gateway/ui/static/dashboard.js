// tollway dashboard: the one script. Pages work without it; it adds a copy button for
// a new key's secret and asks before a key is revoked.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent).then(() => { button.textContent = "Copied"; });
  }
});
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button.danger[data-key]");
  if (button && !window.confirm(`Revoke ${button.dataset.key}? Calls with it stop at once.`)) {
    event.preventDefault();
  }
});
