// Added after the bridge by `symphony dev` only: the page reloads itself when its author saves a file.
(function () {
  "use strict";
  window.symphony.on("symphony.dev.reload", function () {
    window.location.reload();
  });
})();
