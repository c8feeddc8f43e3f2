/* The shop's own script: an event request when a product goes into the basket. */
document.addEventListener("click", function (event) {
  var button = event.target.closest("#buy");
  if (button && window.pixelMiddleware) {
    window.pixelMiddleware.track("add-to-basket", { ck1: button.dataset.product });
    button.textContent = "Added";
  }
});
