// Upload progress for the forms that post a file through htmx (contact and suppression
// import): htmx reports the bytes sent; the form's <progress class="upload"> shows them.
document.addEventListener("htmx:xhr:progress", function (event) {
  var form = event.target.closest ? event.target.closest("form") : null;
  var bar = form ? form.querySelector("progress.upload") : null;
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.max = event.detail.total;
  bar.value = event.detail.loaded;
});
