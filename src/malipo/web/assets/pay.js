// The payer's pages: hosted checkout (#checkout) and payment links (#paylink). No framework, no
// inline script (the pages' Content-Security-Policy allows only this file).
(function () {
  "use strict";
  var POLL_MS = 1500;

  function $(id) { return document.getElementById(id); }

  function problemText(data, status) {
    if (data && data.errors && data.errors.length) {
      return data.errors.map(function (e) { return e.message; }).join(" ");
    }
    if (data && data.detail) { return data.detail; }
    return "Something went wrong (" + status + "). Please try again.";
  }

  function request(url, body) {
    var init = { headers: { accept: "application/json" } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (reply) {
      return reply.json().catch(function () { return null; }).then(function (data) {
        if (!reply.ok) { throw new Error(problemText(data, reply.status)); }
        return data;
      });
    });
  }

  function say(text) {
    var box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function show(sections, which) {
    sections.forEach(function (name) { var el = $(name); if (el) { el.hidden = name !== which; } });
  }

  function busy(form, on) {
    Array.prototype.forEach.call(form.querySelectorAll("button, input"), function (el) { el.disabled = on; });
  }

  // Follows a session's status until it is final or payable again; calls back with each answer.
  function follow(sessionId, onAnswer) {
    function tick() {
      request("/checkout/" + sessionId + "/status").then(function (status) {
        if (onAnswer(status) === "again") { setTimeout(tick, POLL_MS); }
      }).catch(function () { setTimeout(tick, POLL_MS * 2); });
    }
    setTimeout(tick, POLL_MS);
  }

  function receiptText(status) {
    var text = status.currency + " " + status.amount + " paid";
    if (status.receipt) { text += ". Receipt " + status.receipt; }
    return text + ".";
  }

  // ------------------------------------------------------------------ hosted checkout
  function checkout(root) {
    var id = root.dataset.session;
    var sections = ["choose", "waiting", "done", "over"];

    function render(status) {
      var cancel = $("cancel"); // paid: nothing to cancel; a prompt or a bank check live: wait for it
      if (cancel) { cancel.parentNode.hidden = status.status === "completed" || status.status === "pending"; }
      if (status.status === "completed") {
        show(sections, "done");
        say("");
        $("done-text").textContent = receiptText(status);
        if (status.redirectUrl) {
          $("done-back").hidden = false;
          setTimeout(function () { window.location.assign(status.redirectUrl); }, 1500);
        }
        return "done";
      }
      if (status.status === "expired") { show(sections, "over"); say(status.message); return "done"; }
      if (status.status === "pending") {
        show(sections, "waiting");
        if (status.method === "card") {
          $("waiting-title").textContent = "Confirming your card";
          $("waiting-text").textContent = "Waiting for your bank. This page updates by itself.";
        }
        return "again";
      }
      show(sections, status.canPay ? "choose" : "over");
      say(status.message);
      document.querySelectorAll("form").forEach(function (f) { busy(f, false); });
      return "done";
    }

    function tabs() {
      var buttons = root.querySelectorAll("[role=tab]");
      Array.prototype.forEach.call(buttons, function (tab) {
        tab.addEventListener("click", function () {
          Array.prototype.forEach.call(buttons, function (other) {
            var on = other === tab;
            other.setAttribute("aria-selected", on ? "true" : "false");
            $(other.getAttribute("aria-controls")).hidden = !on;
          });
          say("");
        });
      });
    }

    var mpesa = $("pane-mpesa");
    if (mpesa) {
      mpesa.addEventListener("submit", function (event) {
        event.preventDefault();
        say("");
        busy(mpesa, true);
        request("/checkout/" + id + "/mpesa", { phone: $("phone").value.trim() }).then(function (status) {
          if (render(status) === "again") { follow(id, render); }
        }).catch(function (error) { say(error.message); busy(mpesa, false); });
      });
    }

    var card = $("pane-card");
    card.addEventListener("submit", function (event) {
      event.preventDefault();
      say("");
      busy(card, true);
      var body = {
        cardNumber: $("card-number").value.replace(/\s+/g, ""),
        expiryMonth: parseInt($("expiry-month").value, 10) || 0,
        expiryYear: parseInt($("expiry-year").value, 10) || 0,
        cvv: $("cvv").value.trim()
      };
      request("/checkout/" + id + "/card", body).then(function (status) {
        if (status.status === "pending" && status.redirectUrl) {
          window.location.assign(status.redirectUrl); // the bank's 3-D Secure page
          return;
        }
        if (render(status) === "again") { follow(id, render); }
      }).catch(function (error) { say(error.message); busy(card, false); });
    });

    tabs();
    var first = {
      status: root.dataset.status, redirectUrl: root.dataset.redirect || null,
      message: root.dataset.message || null, canPay: root.dataset.canPay === "yes",
      amount: "", currency: "", method: null, receipt: null
    };
    if (first.status === "open") { render(first); return; }
    request("/checkout/" + id + "/status").then(function (status) {
      if (render(status) === "again") { follow(id, render); }
    });
  }

  // ------------------------------------------------------------------ payment links
  function paymentLink(root) {
    var slug = root.dataset.slug;
    var form = $("pay-form");
    var sections = ["pay-form", "waiting", "done"];
    var params = new URLSearchParams(window.location.search);
    var origin = params.get("origin");
    if (origin && !/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(origin)) { origin = null; }

    function tell(status) {
      // The button (button.js) on the merchant's page opened this window, naming its origin.
      var target = window.opener || (window.parent !== window ? window.parent : null);
      if (!target || !origin) { return; }
      target.postMessage({
        type: "paymentSuccess", slug: slug, sessionId: status.sessionId, amount: status.amount,
        currency: status.currency, reference: status.reference, receipt: status.receipt
      }, origin);
    }

    function render(status) {
      if (status.status === "completed") {
        show(sections, "done");
        say("");
        $("done-text").textContent = receiptText(status);
        tell(status);
        var next = root.dataset.successUrl;
        if (next && !window.opener) { setTimeout(function () { window.location.assign(next); }, 1500); }
        return "done";
      }
      if (status.status === "pending") { show(sections, "waiting"); return "again"; }
      show(sections, "pay-form");
      busy(form, false);
      say(status.status === "expired" ? "This payment expired. Please try again." : status.message);
      return "done";
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      say("");
      busy(form, true);
      var body = { phone: $("phone").value.trim() };
      var amount = $("amount-input");
      if (amount) { body.amount = amount.value.trim(); }
      request("/pay/" + encodeURIComponent(slug), body).then(function (status) {
        if (render(status) === "again") { follow(status.sessionId, render); }
      }).catch(function (error) { say(error.message); busy(form, false); });
    });
  }

  var root = $("checkout");
  if (root) { checkout(root); }
  var link = $("paylink");
  if (link) { paymentLink(link); }
})();
