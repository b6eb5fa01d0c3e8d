// leadrouter dashboard: small enhancements only. Every form works without this file.
(function () {
  "use strict";

  // Filters submit themselves when a select or checkbox changes.
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.addEventListener("change", function (e) {
      if (e.target.matches("select, input[type=checkbox]")) form.requestSubmit();
    });
  });

  // Closing a lead or clearing a next action asks first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var status = form.querySelector("select[name=status]");
    if (status && (status.value === "won" || status.value === "lost") && !form.classList.contains("move")) {
      if (!window.confirm("Close this lead as " + status.value + "?")) e.preventDefault();
    }
  });

  // Board: move a card without reloading the page. On any failure the form posts normally,
  // and the server shows why (e.g. a next action is needed) on the lead's card.
  document.querySelectorAll(".board form.move").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var card = form.closest(".card");
      var to = form.querySelector("select[name=status]").value;
      var target = document.querySelector('.column[data-status="' + to + '"] .cards');
      if (!target || card.parentElement === target) return;
      var button = form.querySelector("button");
      button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
        redirect: "follow"
      }).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        var from = card.parentElement;
        target.prepend(card);
        [from, target].forEach(function (list) {
          var count = list.closest(".column").querySelector(".count");
          if (count) count.textContent = String(list.children.length);
        });
        button.disabled = false;
        card.querySelector("a").focus();
        announce("Moved to " + to.replace(/_/g, " "));
      }).catch(function () {
        form.submit();
      });
    });
  });

  var live;
  function announce(text) {
    if (!live) {
      live = document.createElement("p");
      live.setAttribute("role", "status");
      live.className = "visually-hidden";
      document.body.appendChild(live);
    }
    live.textContent = text;
  }

  // A re-rendered card with an error moves focus to the message.
  var error = document.getElementById("card-error");
  if (error) error.focus();
})();
