"""Device events: the IS 15959 event catalogue and its IEC 61968-9 ``EndDeviceEventType`` codes."""
