"""The tray front end: ``icon`` (pystray: the icon, its menu, notifications), ``model`` (the pure menu
model, testable without a display), ``backend`` (choosing a pystray backend, waiting for a tray host)
and ``signin_dialog`` (the sign-in window, run as its own process).
"""
