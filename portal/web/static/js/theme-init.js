// Classic (non-module) script in <head>: set the theme before the first paint so pages do not flash.
(function () {
  var theme = null;
  try {
    theme = window.localStorage.getItem("portal-theme");
  } catch (e) {
    theme = null;
  }
  if (theme !== "light" && theme !== "dark") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-theme", theme);
})();
