// The Symphony bridge, put into every motif page by the host: symphony.call and symphony.on.
// It finds the session's base URL from its own address, so a page never handles the token itself.
(function () {
  "use strict";
  if (window.symphony) {
    return;
  }
  var base = new URL(".", document.currentScript.src).href;
  var listeners = new Map();
  var source = null;

  function SymphonyError(body, status) {
    var error = new Error(body.message || "the call failed (" + status + ")");
    error.name = "SymphonyError";
    error.code = body.code || "failed";
    error.hint = body.hint || null;
    error.problems = body.problems || [];
    error.status = status;
    return error;
  }

  function call(method, args) {
    return fetch(base + "call/" + encodeURIComponent(method), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ args: args === undefined ? {} : args }),
      credentials: "omit",
      cache: "no-store",
    }).then(function (response) {
      return response.json().then(
        function (body) {
          if (!response.ok) {
            throw SymphonyError(body.error || {}, response.status);
          }
          return body.result;
        },
        function () {
          throw SymphonyError({}, response.status);
        }
      );
    });
  }

  function connect() {
    if (source !== null) {
      return;
    }
    source = new EventSource(base + "events");
    source.onmessage = function (message) {
      var envelope = JSON.parse(message.data);
      var callbacks = listeners.get(envelope.event) || [];
      callbacks.slice().forEach(function (callback) {
        try {
          callback(envelope.data);
        } catch (error) {
          console.error("symphony: a listener of '" + envelope.event + "' threw", error);
        }
      });
    };
  }

  function on(event, callback) {
    if (!listeners.has(event)) {
      listeners.set(event, []);
    }
    listeners.get(event).push(callback);
    connect();
    return function off() {
      var callbacks = listeners.get(event) || [];
      var index = callbacks.indexOf(callback);
      if (index >= 0) {
        callbacks.splice(index, 1);
      }
    };
  }

  // Resolves once the event stream is open, so a page can ask for events it must not miss.
  function connected() {
    connect();
    return new Promise(function (resolve) {
      if (source.readyState === EventSource.OPEN) {
        resolve();
      } else {
        source.addEventListener("open", function () { resolve(); }, { once: true });
      }
    });
  }

  window.symphony = Object.freeze({ call: call, on: on, connected: connected });
})();
