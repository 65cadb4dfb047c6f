// The website's own behaviour, as a static file: the Content-Security-Policy runs no inline script or handler.
document.addEventListener("focusin", function (event) {
  var target = event.target;
  if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
    target.select(); // the referral link, ready to copy
  }
});

// The code page: count down to "send a new code", then enable it (the server refuses an early resend anyway).
document.addEventListener("DOMContentLoaded", function () {
  var counter = document.querySelector("[data-countdown]");
  var button = document.querySelector("[data-testid=resend]");
  if (!counter || !button) return;
  var left = parseInt(counter.getAttribute("data-countdown"), 10) || 0;
  var tick = setInterval(function () {
    left -= 1;
    if (left <= 0) {
      clearInterval(tick);
      button.disabled = false;
      var note = counter.closest("p");
      if (note) note.hidden = true;
      return;
    }
    counter.textContent = String(left);
  }, 1000);
});

// The card's QR token lives 30 s: a phone coming back from the lock screen or another app asks for a fresh one at
// once instead of waiting for the next poll (browsers slow timers down in hidden tabs).
document.addEventListener("visibilitychange", function () {
  var qr = document.getElementById("card-qr");
  if (document.visibilityState === "visible" && qr && window.htmx) {
    window.htmx.trigger(qr, "kprefresh");
  }
});
