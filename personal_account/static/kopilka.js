// The website's own behaviour, as a static file: the Content-Security-Policy runs no inline script or handler.
document.addEventListener("focusin", function (event) {
  var target = event.target;
  if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
    target.select(); // the referral link, ready to copy
  }
});
