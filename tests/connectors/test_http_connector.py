def test_import():
    import connectors.http
    assert connectors.http.connector.key == "http"
