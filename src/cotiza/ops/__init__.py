"""Operations: diagnosis, supervision, evidence capture and alerts for a cotiza service."""
