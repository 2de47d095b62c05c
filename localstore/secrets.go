package localstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/fljob-dev/fljob/controllers"
)

// maxSecretSize is the API server's bound on a Secret's data.
const maxSecretSize = 1 << 20

var secretResource = schema.GroupResource{Resource: "secrets"}

// DecodeSecret reads a core v1 Secret manifest strictly: unknown fields
// are an error naming them, as with kubectl's strict field validation.
func DecodeSecret(doc []byte) (*corev1.Secret, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	sec := &corev1.Secret{}
	strict, err := kjson.UnmarshalStrict(js, sec)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf(
			"Secret in version \"v1\" cannot be handled as a Secret: %v", err))
	}
	if len(strict) > 0 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf(
			"Secret in version \"v1\" cannot be handled as a Secret: %v", runtime.NewStrictDecodingError(strict)))
	}
	return sec, nil
}

// validateSecret checks what the API server checks of a Secret that a
// single host can use: its metadata, its keys, its size, and an Opaque
// type.
func validateSecret(sec *corev1.Secret) error {
	errs := metavalidation.ValidateObjectMeta(&sec.ObjectMeta, true, metavalidation.NameIsDNSSubdomain,
		field.NewPath("metadata"))
	size := 0
	for k, v := range sec.Data {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		size += len(v)
	}
	if size > maxSecretSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxSecretSize))
	}
	if sec.Type != corev1.SecretTypeOpaque {
		errs = append(errs, field.NotSupported(field.NewPath("type"), sec.Type,
			[]string{string(corev1.SecretTypeOpaque)}))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, sec.Name, errs)
	}
	return nil
}

func (s *Store) secretPath(namespace, name string) string {
	return filepath.Join(s.dir, secretsDir, namespace, name+fileSuffix)
}

// ApplySecret creates or replaces a Secret, folding stringData into data
// as the API server does. The file is readable by its owner only.
func (s *Store) ApplySecret(_ context.Context, sec *corev1.Secret, dryRun bool) (ApplyResult, error) {
	sec = sec.DeepCopy()
	if sec.Type == "" {
		sec.Type = corev1.SecretTypeOpaque
	}
	for k, v := range sec.StringData {
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[k] = []byte(v)
	}
	sec.StringData = nil
	if err := validateSecret(sec); err != nil {
		return "", err
	}
	res := Created
	err := s.withLock(func() error {
		old, err := s.readSecret(sec.Namespace, sec.Name)
		if err != nil {
			return err
		}
		if old != nil {
			res = Configured
			if equality.Semantic.DeepEqual(old.Data, sec.Data) && equality.Semantic.DeepEqual(old.Labels, sec.Labels) {
				res = Unchanged
				return nil
			}
			sec.UID, sec.CreationTimestamp = old.UID, old.CreationTimestamp
		} else {
			sec.UID = types.UID(uuid.NewUUID())
			sec.CreationTimestamp = metav1.Now().Rfc3339Copy()
		}
		if dryRun {
			return nil
		}
		sec.APIVersion, sec.Kind = "v1", "Secret"
		data, err := yaml.Marshal(sec)
		if err != nil {
			return fmt.Errorf("encode secret: %w", err)
		}
		return writeAtomic(s.secretPath(sec.Namespace, sec.Name), data, secretMode)
	})
	return res, err
}

func (s *Store) readSecret(namespace, name string) (*corev1.Secret, error) {
	data, err := os.ReadFile(s.secretPath(namespace, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
	}
	sec := &corev1.Secret{}
	if err := yaml.Unmarshal(data, sec); err != nil {
		return nil, fmt.Errorf("decode secret %s/%s: %w", namespace, name, err)
	}
	return sec, nil
}

// SecretValue returns one key of a stored Secret. A missing Secret or key
// is an error wrapping controllers.ErrNotFound.
func (s *Store) SecretValue(_ context.Context, namespace, name, key string) (string, error) {
	sec, err := s.readSecret(namespace, name)
	if err != nil {
		return "", err
	}
	if sec == nil {
		return "", notFound(secretResource, name)
	}
	v, ok := sec.Data[key]
	if !ok {
		return "", fmt.Errorf("secret %s/%s has no key %q: %w", namespace, name, key, controllers.ErrNotFound)
	}
	return string(bytes.Clone(v)), nil
}

// DeleteSecret deletes a Secret; a missing one is reported as NotFound.
func (s *Store) DeleteSecret(_ context.Context, namespace, name string) (DeleteResult, error) {
	res := NotFound
	err := s.withLock(func() error {
		p := s.secretPath(namespace, name)
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete secret %s/%s: %w", namespace, name, err)
		}
		res = Deleted
		return syncDir(filepath.Dir(p))
	})
	return res, err
}
