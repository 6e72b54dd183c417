// malipo's Pay button. On your page:
//   <script src="https://YOUR-MALIPO/button.js" data-link="your-link-slug" async></script>
// Optional: data-label="Pay now", data-on-success="functionName" (called with the payment).
// When the payer has paid, the payment window posts {type: "paymentSuccess", slug, sessionId,
// amount, currency, reference, receipt} to your page (window "message" event, from malipo's
// origin), and the script tag dispatches a bubbling "malipo:paymentSuccess" event with it.
// Confirm the payment on your server (GET /api/v1/checkout/sessions/{sessionId}) before shipping.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var base = new URL(script.src, window.location.href).origin;
  var slug = script.getAttribute("data-link") || "";
  if (!/^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/.test(slug)) {
    if (window.console) { window.console.error("malipo button: data-link is not a payment link slug"); }
    return;
  }
  var button = document.createElement("button");
  button.type = "button";
  button.className = "malipo-pay-button";
  button.textContent = script.getAttribute("data-label") || "Pay with M-Pesa";
  button.setAttribute("style", "font:600 16px system-ui,sans-serif;color:#fff;background:#0b7a4b;" +
    "border:0;border-radius:8px;padding:.7em 1.4em;cursor:pointer");
  var url = base + "/pay/" + slug + "?origin=" + encodeURIComponent(window.location.origin);
  button.addEventListener("click", function () {
    var opened = window.open(url, "malipo-pay-" + slug, "width=440,height=680");
    if (!opened) { window.location.assign(url); } // a pop-up blocker: go there instead
  });
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== base || !data || data.type !== "paymentSuccess" || data.slug !== slug) { return; }
    button.disabled = true;
    button.textContent = "Paid ✓";
    script.dispatchEvent(new CustomEvent("malipo:paymentSuccess", { detail: data, bubbles: true }));
    var hook = script.getAttribute("data-on-success");
    if (hook && typeof window[hook] === "function") { window[hook](data); }
  });
  script.parentNode.insertBefore(button, script.nextSibling);
})();
