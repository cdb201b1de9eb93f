/* Lets the widget manager run beside MathJax 3.
 *
 * The widget manager (@jupyter-widgets/html-manager 1.0) typesets widget labels with
 * MathJax 2's `MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`. The book uses
 * MathJax 3, which has no `Hub`, so on a page with both math and widgets every label threw
 * "Cannot read properties of undefined (reading 'Queue')". This script gives whatever object
 * is `window.MathJax` (first the configuration, then MathJax 3 itself, which replaces it when
 * it loads) that one MathJax 2 call, carried out by MathJax 3's `typesetPromise`.
 * It is loaded before embed.js on pages with widgets (nb_ipywidgets_js in _config.yml).
 *
 * Widget labels are still shown as written: the book's MathJax 3 typesets only Sphinx's
 * math elements and knows \(...\) but not $...$, so chapters write labels in plain text.
 */
(function () {
  "use strict";

  function typeset(element) {
    var mathjax = window.MathJax;
    if (!mathjax || !mathjax.startup || !mathjax.startup.promise) {
      return; // MathJax 3 is not on this page (or not loaded): nothing to typeset with
    }
    mathjax.startup.promise
      .then(function () {
        return mathjax.typesetPromise ? mathjax.typesetPromise([element]) : null;
      })
      .catch(function (error) {
        console.warn("MathJax could not typeset a widget label:", error);
      });
  }

  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
          typeset(job[2]);
        }
      }
    },
  };

  function withHub(mathjax) {
    if (mathjax && typeof mathjax === "object" && !mathjax.Hub) {
      // not enumerable: MathJax 3 reads its configuration from this object's own keys
      Object.defineProperty(mathjax, "Hub", { value: hub, configurable: true, writable: true });
    }
    return mathjax;
  }

  var current = withHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () {
      return current;
    },
    set: function (value) {
      current = withHub(value);
    },
  });
})();
