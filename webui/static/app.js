// Progressive enhancement only: every page works without JavaScript.
import { initAll } from "./vendor/govuk/govuk-frontend.min.js";

initAll();
// Parts of a page swapped in without a reload (webui/assets/js/pages/forms.js): their components start too.
document.addEventListener("app:swapped", (event) => initAll({ scope: event.target }));
