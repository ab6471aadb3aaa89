package ui

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPI documents /api/v1; a test checks it against the route table.
//
//go:embed openapi.json
var openAPI []byte

func (s *Server) openAPIDoc(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPI)
}
