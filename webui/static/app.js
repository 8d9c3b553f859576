// Progressive enhancement only: every page works without JavaScript.
import { initAll } from "./vendor/govuk/govuk-frontend.min.js";

initAll();
