"""Feedback intake: tracking, unsubscribes, bounces and complaints."""
