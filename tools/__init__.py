"""Developer tools run by hand or by the lead engineer; the engine never imports them."""
